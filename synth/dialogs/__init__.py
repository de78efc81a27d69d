"""Text in: dialog sources (jsonl, DailyDialog, chat formats, Hugging Face), the checks and
cleaning that make a Dialog (build, text, markup), and long sessions joined from dialogs."""
