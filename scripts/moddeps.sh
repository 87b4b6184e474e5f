#!/bin/bash
# Prints the module dependency edges (docs/architecture.md): top-level module -> top-level
# modules it names in code (crate::X), tests and comments left out. Usage: scripts/moddeps.sh [DIR]
cd "${1:-.}"
for f in $(git ls-files 'src/*.rs' | grep -v -e '/tests.rs$' -e '/fixtures.rs$'); do
  m=$(echo "$f" | sed -e 's#^src/##' -e 's#\.rs$##' -e 's#/mod$##' -e 's#/#::#g')
  top=$(echo "$m" | cut -d: -f1)
  awk '/^#\[cfg\(test\)\]/{exit} {print}' "$f" | sed -e 's#//.*$##' | grep -o 'crate::[a-z_]*' | sed 's/crate:://' | sort -u | while read d; do
    [ "$d" != "$top" ] && echo "$top -> $d"
  done
done | sort -u
