"""HTTP/1.1: the sans-I/O parser (parser.py); the server and client arrive with issue 15."""
