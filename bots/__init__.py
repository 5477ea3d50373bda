"""The runnable programs: settings, assembly and the `paylinks` command line."""
