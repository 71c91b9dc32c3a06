fn main() {
    for p in std::env::args().skip(1) {
        let c = verse_compose::compose(&p, &verse_compose::Options::default()).unwrap();
        println!(
            "== {p}\n{:?} net={:?} eph={} backend={:?} desk={} q={} run={:?}\n{}",
            c.draft.packages,
            c.draft.network,
            c.draft.ephemeral,
            c.draft.backend,
            c.draft.desktop,
            c.draft.quarantine,
            c.draft.run,
            c.explain()
        );
    }
}
