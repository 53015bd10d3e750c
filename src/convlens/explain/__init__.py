"""Showing the work: the seed's walkthrough, by-hand arithmetic, and figures."""
