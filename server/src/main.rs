fn main() {
    eprintln!("sockchat-server: not built yet");
    std::process::exit(2);
}
