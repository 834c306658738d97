"""Search: the pure logic of selection (islands, members, noise-aware judging) and the candidate
record a proposed child becomes. No Ray, no files."""
