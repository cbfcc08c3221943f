"""minimax-watcher: upload images dropped into folders to the useapi.net MiniMax files API."""

__version__ = "0.1.0"
