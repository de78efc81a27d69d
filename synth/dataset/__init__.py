"""The dataset folder on disk: its records (the contract), a Conversation described as records
(metadata), the atomic writer and its recovery, the reader, and the two-channel conversation
audio (mixdown, augment). Every other stage may use these; they use no stage."""
