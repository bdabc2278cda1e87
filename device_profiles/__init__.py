"""Versioned device latency profiles (JSON package data), their schema and loader."""
