"""Dataset layouts and file formats: AI City folders, MOT txt, submissions, video, the synthetic world."""
