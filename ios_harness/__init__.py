"""iOS measurement harness: the Swift timing tool (see Package.swift) and the ingest of its JSON."""
