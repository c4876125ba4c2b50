"""Studies: study files, the learning-rate sweep and the runner that trains every arm x seed."""
