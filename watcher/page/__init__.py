"""The status page (SPEC §9): a read-only WSGI app on `report.listener.Listener`, its files and thumbnails."""
