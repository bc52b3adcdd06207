"""Benchmarks: the gateway against the straight path and the proxies users would pick."""
