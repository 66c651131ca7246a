//! Harness for end-to-end tests: finds and spawns the real binaries.
