"""What every stage shares: errors, verified atomic writes, secrets, the class legend, the run's grid and blocks,
the configuration, code versions, processing windows and figures."""
