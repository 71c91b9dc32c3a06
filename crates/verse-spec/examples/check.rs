fn main() {
    let path = std::env::args().nth(1).expect("path");
    match verse_spec::load(std::path::Path::new(&path)) {
        Ok(spec) => println!("{}\n{}", spec.canonical_json(), spec.digest()),
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1)
        }
    }
}
