"""Running the pipeline: camera jobs, executors, run folders, resume."""
