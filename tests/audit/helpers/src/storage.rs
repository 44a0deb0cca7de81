pub struct Directory;

impl Directory {
    pub fn scan(name: &str) -> Vec<u8> {
        let mut all = Vec::new();
        for part in [name, "b"] {
            all.extend(Self::hash_file(part));
        }
        all
    }

    fn hash_file(name: &str) -> Vec<u8> {
        std::fs::read(name).unwrap_or_default()
    }
}

pub fn load_settings() -> String {
    parse(read_raw())
}

fn read_raw() -> String {
    level_three()
}

fn level_three() -> String {
    std::fs::read_to_string("settings.toml").unwrap_or_default()
}

fn parse(text: String) -> String {
    text.trim().to_owned()
}

pub fn later() -> impl std::future::Future<Output = ()> {
    async { tokio::fs::write("later", "x").await.unwrap() }
}
