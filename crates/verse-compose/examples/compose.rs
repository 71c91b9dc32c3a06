//! `cargo run -p verse-compose --example compose -- "PROMPT"`: print the fragment and why.
fn main() {
    let prompt = std::env::args().skip(1).collect::<Vec<_>>().join(" ");
    match verse_compose::compose(&prompt, &Default::default()) {
        Ok(c) => {
            print!("{}", c.rendered.toml);
            print!("{}", c.explain());
        }
        Err(e) => eprintln!("{e}"),
    }
}
