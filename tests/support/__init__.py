"""Helpers shared by the tests of several parts: people with sites, servers, friends."""
