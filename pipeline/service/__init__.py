"""Running as a process: the run command, logs, metrics, /healthz, systemd notifications and
progress lines."""
