// A #[blocking] fn becomes async, so a call to itself in its body would be
// a future; the call is refused with the fix, and nothing else is reported.

struct Dir(std::path::PathBuf);

impl Dir {
    #[lanes::blocking]
    fn size(self) -> u64 {
        let mut total = 0;
        for entry in std::fs::read_dir(&self.0).into_iter().flatten().flatten() {
            let path = entry.path();
            total += if path.is_dir() {
                Self::size(Dir(path))
            } else {
                entry.metadata().map_or(0, |m| m.len())
            };
        }
        total
    }
}

#[lanes::blocking(limit = 2)]
fn copy_tree(from: std::path::PathBuf, to: std::path::PathBuf) -> std::io::Result<u64> {
    let mut copied = 0;
    std::fs::create_dir_all(&to)?;
    for entry in std::fs::read_dir(&from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        copied += if entry.file_type()?.is_dir() {
            copy_tree(entry.path(), target)?
        } else {
            std::fs::copy(entry.path(), target)?
        };
    }
    Ok(copied)
}

#[tokio::main]
async fn main() {
    let _: u64 = Dir(".".into()).size().await;
    let _: std::io::Result<u64> = copy_tree("a".into(), "b".into()).await;
}
