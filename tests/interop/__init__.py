"""Interop tests between tether and HashiCorp go-plugin peers built from Debian's go-plugin."""
