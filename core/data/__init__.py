"""Synthetic world of people (wild and studio), sharded storage, loaders and real-video ingestion."""
