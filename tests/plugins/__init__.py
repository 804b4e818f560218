"""Plugin and host scripts run as real child processes by the lifecycle tests."""
