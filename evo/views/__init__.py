"""What a person reads of a run: the summary, one candidate, the HTML report, the git export."""
