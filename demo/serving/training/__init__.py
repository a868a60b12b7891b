"""Distillation jobs started from the page: uploads into job files, the job runner, and the service the
"Distil a student" tab (serving/train_tab.py) and its API call."""
