"""The applications on top of the library (never copied into Hub repositories): the Gradio demo (`demo`) and the
Hugging Face Space that serves it (`space/`, a folder to copy into a Space repository, not a module)."""
