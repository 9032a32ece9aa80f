"""Commands, real servers (waitress, nginx), packaging, locks and docs."""
