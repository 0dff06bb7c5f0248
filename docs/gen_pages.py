"""mkdocs-gen-files script: the reference pages made from the code's declarations at build time
(never typed twice). Each page is ``carbench``'s own ``reference_page`` text."""

import mkdocs_gen_files

from carbench.cli.docgen import PAGES, reference_page

for name in PAGES:
    with mkdocs_gen_files.open(f"reference/{name}", "w") as f:
        f.write(reference_page(name))
