from synth.dialogs.markup import speakable


def test_code_tables_links_and_markers_become_sentences():
    text = """# Getting started

Install it with `pip install synth`, then see the [guide](https://example.org/guide).

```python
print("this is code")
```

| option | meaning |
|---|---|
| --seed | the seed |

- **First**, make a folder
- *Then* run it: https://example.org/run
![a diagram of the flow](img.png)
> Quoted <b>bold</b> words."""
    assert speakable(text) == (
        "Getting started. Install it with pip install synth, then see the guide. "
        "First, make a folder. Then run it: a diagram of the flow Quoted bold words."
    )


def test_plain_text_is_unchanged_and_code_only_is_empty():
    assert speakable("Hello there, how are you?") == "Hello there, how are you?"
    assert speakable("```\nx = 1\n```") == ""
    assert speakable("snake_case_name and 2*3*4 stay") == "snake_case_name and 2*3*4 stay"
