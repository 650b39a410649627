"""Model runtimes, one file each: suggester, router, encoder, lightgbm."""
