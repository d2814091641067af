"""Every read: querysets of what a user may see, by domain, built so a page costs a fixed number of
queries."""
