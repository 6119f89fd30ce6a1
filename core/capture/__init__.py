"""Photos -> avatar without a GUI: the capture assistant's checks, creation through `Avatar.create`, and the
photos personalisation refines on. The studio's Create panel and `python main.py create` use it."""
