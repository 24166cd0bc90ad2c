"""Schedules: cron evaluation, crash-safe ticks and the scheduler's background cleanup."""
