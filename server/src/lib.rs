//! sockchat-server library: listeners, connections, rooms, limits, shutdown.
