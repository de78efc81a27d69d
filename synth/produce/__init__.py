"""A dialog becomes a conversation: casting, rendering turns with an engine, the timeline
(gaps, overlaps), backchannels and assembly; the pipeline orchestrates them. Recorded speech
takes the same shape (recorded)."""
