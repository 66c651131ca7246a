"""Replace the generated section of a Markdown file between two markers
(used by bench/report.py and bench/compare.py; the hand-written text around
the markers is kept)."""


def write_section(doc, begin, end, text, heading=""):
    """Put `text` between `begin` and `end` in file `doc`; without the
    markers, append them (after `heading`, if given) to the end."""
    try:
        doc_text = open(doc).read()
    except OSError:
        doc_text = "# Benchmarks\n"
    if begin in doc_text and end in doc_text:
        head, rest = doc_text.split(begin, 1)
        _, tail = rest.split(end, 1)
        doc_text = f"{head}{begin}\n{text}\n{end}{tail}"
    else:
        doc_text = f"{doc_text.rstrip()}\n\n{heading}{begin}\n{text}\n{end}\n"
    with open(doc, "w") as f:
        f.write(doc_text)
