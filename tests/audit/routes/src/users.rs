pub async fn get() -> String {
    std::fs::read_to_string("users.txt").unwrap_or_default() // hotspot: std-fs
}
