"""Dear PyGui studio: viewport and panels. Holds GUI handles only; maths lives in core/ and render/."""
