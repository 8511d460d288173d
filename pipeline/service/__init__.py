"""Running as a process: the run command, logs, metrics, the run lock and progress lines."""
