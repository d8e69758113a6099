"""A local stand-in for the real-time transactions API, with the real contract byte for byte."""
