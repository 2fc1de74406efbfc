"""pytest11 entry point (skeleton; wired up in the plugin work)."""
