pub async fn get() -> String {
    std::fs::read_to_string("admin.txt").unwrap_or_default() // hotspot: std-fs
}
