#!/usr/bin/env python3
"""Build the package index `verse compose` resolves names and needs against.

Reads Debian's own metadata for one suite (bookworm main, amd64): the Packages file (names,
short descriptions, sections, Provides, Depends/Recommends, debtags) and the AppStream
Components file (which packages are desktop applications). Writes a text index
(crates/verse-compose/data/bookworm.idx, about 7 MB) that the verse binary embeds as is:
decompressing it cost 15-50 ms per `verse compose` on a busy 2-core host, more than the whole
command may take. `--out FILE.zst` writes it zstd-compressed instead (for VERSE_COMPOSE_INDEX).

Sources, in order: --from DIR (e.g. /var/lib/apt/lists: *_Packages, *_Packages.lz4/.xz), else
the archive at deb.debian.org (cached in .cache/). popcon.debian.org is not used (it may be
unreachable); popularity is derived from the archive itself: how many other source packages
depend on or recommend a package, whether it is an AppStream desktop application, whether
debtags call it a program, and its priority.

Index format (one record per line, tab-separated, sorted by name):
    P name flags pop section description appstream-words
                                  flags: g graphical, p program, l library/data
    V name provided-name          a virtual name (Provides) and who provides it
    D name length                 the programs searched, in order (document n is the nth D)
    W word doc:count ...          postings: which programs use the word, how often
                                  (a part of the package name counts 3)
    R name target                 a transitional, dummy or metapackage and what it stands for
    F name program                a graphical front-end and the program it drives
    E word total lower            how many short descriptions use the word (3 or more), and
                                  how many of those write it in lower case
                                  flags also: d transitional/dummy/metapackage,
                                  c graphical but also used from a terminal
Popularity (0..99) adds the number of languages an AppStream app is translated into.
"""
import argparse, glob, gzip, lzma, math, os, re, subprocess, sys, urllib.request
from collections import defaultdict

ARCHIVE = "https://deb.debian.org/debian/dists/{suite}/main/{path}"
LIBRARY = re.compile(r"^(lib|python3-|node-|ruby-|golang-|librust-|r-cran-|r-bioc-|php-|lua-|elpa-|fonts-|texlive-|ocaml-|haskell-|libghc-|gir1\.2-|xfonts-|firmware-|linux-(image|headers|modules)|gccgo-|cl-|octave-|sbcl-|tcl-|erlang-|elixir-|emacs-|vim-|xul-ext-|webext-|myspell-|hunspell-|aspell-|hyphen-|mythes-|task-|education-|junior-|debian-|dh-|rust-|jruby-|gnome-shell-extension-|kodi-|gimp-|inkscape-|gap-|maxima-|coq-|pd-|ladspa-|lv2-|jupyter-|qml-|qt5-|qt6-|gstreamer1\.0-|dvb-|libreoffice-l10n-|libreoffice-help-|manpages-)|(-dev|-doc|-docs|-data|-common|-dbg|-dbgsym|-examples|-l10n|-locale.*|-i18n|-dbgsym|-perl|-java|-tests?|-plugins?|-plugin-.*|-theme|-themes|-icons|-sounds|-music|-fonts?|-headers|-source|-src|-build-deps)$")


def fetch(url, cache):
    if not os.path.exists(cache):
        os.makedirs(os.path.dirname(cache), exist_ok=True)
        print(f"downloading {url}", file=sys.stderr)
        with urllib.request.urlopen(url, timeout=300) as r, open(cache + ".partial", "wb") as f:
            f.write(r.read())
        os.rename(cache + ".partial", cache)
    return cache


def read_any(path):
    if path.endswith(".xz"):
        return lzma.open(path, "rt", encoding="utf-8").read()
    if path.endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8").read()
    if path.endswith(".lz4"):
        return subprocess.run(["lz4", "-dc", path], check=True, capture_output=True).stdout.decode()
    return open(path, encoding="utf-8").read()


def stanzas(text):
    for block in text.split("\n\n"):
        fields, key = {}, None
        for line in block.split("\n"):
            if not line:
                continue
            if line[0] in " \t":
                if key:
                    fields[key] += "\n" + line
                continue
            key, _, value = line.partition(":")
            fields[key] = value.strip()
        if "Package" in fields:
            yield fields


def names_in(relation):
    for alt in relation.split(","):
        for one in alt.split("|"):
            name = one.strip().split(" ")[0].split(":")[0]
            if name:
                yield name


NAME_WEIGHT = 3

# A toolkit (or a runtime that draws windows) among a package's dependencies.
TOOLKIT = re.compile(r"^(libgtk|libqt[56]gui|libqt[56]widgets|libkf5|libsdl|libwx|libfltk|libx11-6|libgl1|libwebkit2gtk|libgtkmm|python3-gi$|gir1\.2-gtk|gir1\.2-adw|python3-pyqt|python3-pyside|python3-qtpy|libgtk3-perl|libgtk2-perl|perl-tk|ruby-gtk|default-jre$|openjdk-\d+-jre$|libopenjfx|tk8|tk$|python3-tk|electron|libelementary|libxaw|libmotif|libxm4|libfox|libglfw|libglut|freeglut|libsfml|libirrlicht|libogre|libclutter|libgdk|libxt6|libegl|libvulkan|libwayland-client|qml-module|python3-pygame|python3-wxgtk|gnustep-gui|libxcb1$|love$|scummvm$|liballegro|libglew|libgles|libcsfml|python3-pyglet|python3-opengl|gjs$|squeak-vm|java-wrappers|emacs-gtk|libxmu|libxext6)")
# "graphical front-end for ClamAV", "GUI for FFmpeg": the program it drives
FRONTEND = re.compile(r"\b(?:front-?end|gui|interface)s? (?:for|to) (?:the )?([A-Za-z0-9][\w.+-]*)", re.I)


def first_names(relation):
    """Every alternative of a relation field, in order."""
    return list(names_in(relation))


def reaches_toolkit(name, pkgs, depth, seen):
    st = pkgs.get(name)
    if not st or name in seen:
        return False
    seen.add(name)
    deps = first_names(st.get("Depends", "") + "," + st.get("Pre-Depends", ""))
    if any(TOOLKIT.match(d) for d in deps):
        return True
    return depth > 0 and any(reaches_toolkit(d, pkgs, depth - 1, seen) for d in deps)


def graphical(name, pkgs, desktop_apps, console_apps):
    """Needs a display: an AppStream desktop application that draws windows (a toolkit
    within three dependency steps; "syncthing" ships a desktop file that opens a browser),
    or, without AppStream data, tagged x11 or linked to a toolkit and not a command-line
    program ("ffmpeg" links SDL for ffplay but is used from a terminal)."""
    st = pkgs[name]
    tags = st.get("Tag", "").replace("\n", " ")
    if name in desktop_apps:
        return reaches_toolkit(name, pkgs, 3, set())
    if name in console_apps:
        return False
    if "interface::x11" in tags:
        return True
    direct = first_names(st.get("Depends", "") + "," + st.get("Pre-Depends", ""))
    return any(TOOLKIT.match(d) for d in direct) and "interface::commandline" not in tags \
        and "interface::text-mode" not in tags


def is_dummy(desc, tags):
    d = desc.lower()
    return "transitional" in d or "dummy package" in d or "metapackage" in d or "role::dummy" in tags


def dummy_target(name, st, pkgs):
    """What a transitional, dummy or metapackage stands for: its first dependency that is a
    program of its own (not -common/-data), e.g. transmission -> transmission-gtk."""
    for dep in first_names(st.get("Depends", "") + "," + st.get("Pre-Depends", "")):
        if dep in pkgs and dep != name and not LIBRARY.search(dep) \
                and not dep.startswith(("lib", "python3", "perl", "debconf")):
            return dep
    return None


def words_of(text):
    """Lower-case words as the resolver reads them (letters, digits and +)."""
    return [w for w in re.split(r"[^\w+]|_", text.lower()) if w]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suite", default="bookworm")
    ap.add_argument("--from", dest="source", help="a directory of apt lists to read instead of the archive")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = args.out or os.path.join(root, "crates/verse-compose/data", f"{args.suite}.idx")
    cache = os.path.join(root, ".cache")
    if args.source:
        pats = [f"*dists_{args.suite}_main_binary-amd64_Packages*", f"*dists_{args.suite}_main_dep11_Components-amd64.yml*"]
        found = [sorted(glob.glob(os.path.join(args.source, p))) for p in pats]
        if not found[0]:
            sys.exit(f"no {args.suite} main amd64 Packages file in {args.source}")
        packages_path = found[0][0]
        dep11_path = found[1][0] if found[1] else None
    else:
        packages_path = fetch(ARCHIVE.format(suite=args.suite, path="binary-amd64/Packages.xz"),
                              os.path.join(cache, f"debian-{args.suite}-main-amd64-Packages.xz"))
        dep11_path = fetch(ARCHIVE.format(suite=args.suite, path="dep11/Components-amd64.yml.gz"),
                           os.path.join(cache, f"debian-{args.suite}-main-dep11-Components-amd64.yml.gz"))
    pkgs = {}
    for st in stanzas(read_any(packages_path)):
        pkgs[st["Package"]] = st
    desktop_apps, console_apps = set(), set()
    # AppStream words (C name, summary, keywords, categories) and how many languages the
    # app is translated into: a well-known program is translated widely, an obscure one not
    appstream = defaultdict(set)
    translations = defaultdict(int)
    if dep11_path:
        for doc in read_any(dep11_path).split("\n---\n"):
            if re.search(r"^Type: (desktop|console)-application$", doc, re.M):
                m = re.search(r"^Package: (\S+)$", doc, re.M)
                if not m:
                    continue
                name = m.group(1)
                if re.search(r"^Type: desktop-application$", doc, re.M):
                    desktop_apps.add(name)
                else:
                    console_apps.add(name)
                for field in ("Name", "Summary"):
                    block = re.search(rf"^{field}:\n((?:  .*\n?)*)", doc, re.M)
                    if block:
                        langs = re.findall(r"^  ('?[\w@]+'?):", block.group(1), re.M)
                        translations[name] = max(translations[name], len(langs))
                        c = re.search(r"^  C: (.*)$", block.group(1), re.M)
                        if c:
                            appstream[name].add(c.group(1))
                kw = re.search(r"^Keywords:\n  C:\n((?:  - .*\n?)*)", doc, re.M)
                if kw:
                    appstream[name].update(re.findall(r"^  - (.*)$", kw.group(1), re.M))
                cats = re.search(r"^Categories:\n((?:- .*\n?)*)", doc, re.M)
                if cats:
                    for cat in re.findall(r"^- (.*)$", cats.group(1), re.M):
                        # "AudioVideo", "InstantMessaging" -> words
                        appstream[name].add(re.sub(r"(?<=[a-z])(?=[A-Z])", " ", cat))
    # reverse dependencies, counted once per depending source package
    rdeps = defaultdict(set)
    provides = defaultdict(set)
    for name, st in pkgs.items():
        src = st.get("Source", name).split(" ")[0]
        for field in ("Depends", "Pre-Depends", "Recommends"):
            for dep in names_in(st.get(field, "")):
                if dep != name:
                    rdeps[dep].add(src)
        for prov in names_in(st.get("Provides", "")):
            provides[prov].add(name)
    lines = []
    docs = []
    replaced, frontends = [], []
    # per word of every short description: how often, and how often written in lower case
    # (an ordinary English word is mostly lower case; a program's name mostly capitalized)
    english = defaultdict(lambda: [0, 0])
    for name in sorted(pkgs):
        st = pkgs[name]
        desc = st.get("Description", "").split("\n")[0].strip().replace("\t", " ")
        tags = st.get("Tag", "").replace("\n", " ")
        section = st.get("Section", "misc").split("/")[-1]
        dummy = is_dummy(desc, tags)
        deps = st.get("Depends", "") + "," + st.get("Pre-Depends", "")
        gui = graphical(name, pkgs, desktop_apps, console_apps) and section not in ("libs", "libdevel", "oldlibs")
        library = bool(LIBRARY.search(name)) or section in ("libs", "libdevel", "oldlibs", "doc", "fonts", "localization") \
            or "transitional" in desc.lower() or "dummy package" in desc.lower()
        program = not library and ("role::program" in tags or name in desktop_apps or section in (
            "games", "graphics", "sound", "video", "editors", "mail", "net", "web", "utils", "admin",
            "science", "math", "electronics", "hamradio", "devel", "text", "x11", "gnome", "kde",
            "database", "vcs", "interpreters", "otherosfs", "misc", "comm", "news", "tex", "httpd"))
        pop = 8 * math.log1p(len(rdeps.get(name, ())))
        pop += 14 if name in desktop_apps else 0
        pop += min(30, translations.get(name, 0))
        pop += 6 if "role::program" in tags else 0
        pop += 6 if st.get("Priority") in ("required", "important", "standard") else 0
        # used from a terminal too: a console application, an interactive shell ("octave"), or
        # a command-line program without a desktop file ("ffmpeg")
        console = gui and (name in console_apps or "interface::shell" in tags
                           or ("interface::commandline" in tags and name not in desktop_apps))
        flags = ("g" if gui else "") + ("p" if program else "") + ("l" if library else "") \
            + ("d" if dummy else "") + ("c" if console else "")
        if dummy:
            target = dummy_target(name, st, pkgs)
            if target:
                replaced.append(f"R\t{name}\t{target}")
        m = FRONTEND.search(desc)
        if m and gui:
            base = m.group(1).lower().rstrip(".")
            if base != name and base in pkgs:
                frontends.append(f"F\t{name}\t{base}")
        for w in re.findall(r"[A-Za-z0-9]+", desc):
            lw = w.lower()
            english[lw][0] += 1
            if w == lw:
                english[lw][1] += 1
        extra = " ".join(sorted(appstream.get(name, ()))).replace("\t", " ").replace("\n", " ")
        lines.append(f"P\t{name}\t{flags or '-'}\t{min(99, round(pop))}\t{section}\t{desc}\t{extra}")
        if program:
            docs.append((name, desc, extra))
    lines.extend(replaced)
    lines.extend(frontends)
    for w in sorted(english):
        total, lower = english[w]
        if total >= 3:
            lines.append(f"E\t{w}\t{total}\t{lower}")
    for virt in sorted(provides):
        # Rust crate features and Haskell ABI names (28k of 37k) are never typed by a person,
        # and language libraries are looked up by package name
        if virt in pkgs or virt.startswith(("librust-", "libghc-")):
            continue
        for name in sorted(provides[virt]):
            lines.append(f"V\t{virt}\t{name}")
    # postings: for every word of a program's name, description and AppStream words, the
    # programs using it with a weighted count (a name part counts NAME_WEIGHT), so that a query
    # looks words up instead of reading every description
    postings = defaultdict(list)
    for doc, (name, desc, extra) in enumerate(docs):
        counts = defaultdict(int)
        length = 0
        for w in words_of(desc) + words_of(extra):
            counts[w] += 1
            length += 1
        for w in re.split(r"[-.]", name):
            if w:
                counts[w] += NAME_WEIGHT
                length += 1
        lines.append(f"D\t{name}\t{length}")
        for w, c in counts.items():
            postings[w].append(f"{doc}:{c}")
    for w in sorted(postings):
        lines.append(f"W\t{w}\t{' '.join(postings[w])}")
    data = ("\n".join(lines) + "\n").encode()
    os.makedirs(os.path.dirname(out), exist_ok=True)
    if out.endswith(".zst"):
        # the frame records its size, so the reader decompresses in one allocation
        subprocess.run(["zstd", "-q", "-19", "-f", f"--stream-size={len(data)}", "-o", out], input=data, check=True)
    else:
        with open(out + ".partial", "wb") as f:
            f.write(data)
        os.rename(out + ".partial", out)
    virtual = sum(1 for line in lines if line.startswith("V\t"))
    print(f"{out}: {len(pkgs)} packages, {virtual} virtual names, {len(docs)} programs searched, "
          f"{len(data)} bytes, {os.path.getsize(out)} written", file=sys.stderr)


if __name__ == "__main__":
    main()
