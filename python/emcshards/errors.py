class ShardError(Exception):
    """A file that does not follow the format, or whose checksum does not match: names the file and the place."""

    def __init__(self, message, file=None, place=None):
        self.file = file
        self.place = place
        where = ", ".join(p for p in [file, place] if p)
        super().__init__(f"{where}: {message}" if where else message)
