"""The engine's SQL, as named operations on a session (as a job manager's queries serve a
worker's loop): the loops in `dialer.engine` decide *when* and *what for*; these modules say
*which rows*. Dialect-specific statements stay here and in `attempts`/`event_log`."""
