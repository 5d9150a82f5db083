"""Issue 10 items 9-14: hostile input against newsflow's real code, served on loopback."""
