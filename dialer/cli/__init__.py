"""The `dialer` command line."""
