//! The ImageNet folder layout: `ROOT/<class>/**/<image>`; classes are the sorted sub-folder
//! names, indexed from 0; files are sorted (torchvision's `ImageFolder` order).

use std::path::{Path, PathBuf};

use crate::error::{ImageError, Result};

/// File extensions torchvision's `ImageFolder` accepts (case-insensitive). The extension only
/// selects files: [`decode`](super::decode) picks the decoder by content and gives Pillow's pixels
/// for every format here (BMP and TIFF in their common layouts; the rare others are refused with
/// an error naming the variant, see the `decode` module).
pub const IMAGE_EXTENSIONS: [&str; 9] = ["jpg", "jpeg", "png", "ppm", "bmp", "pgm", "tif", "tiff", "webp"];

/// The samples of one split (`train` or `val`).
#[derive(Debug, Clone)]
pub struct ImageFolder {
    /// The split's folder.
    pub root: PathBuf,
    /// Class names (sorted sub-folder names).
    pub classes: Vec<String>,
    /// `(file, class index)` in order.
    pub samples: Vec<(PathBuf, usize)>,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ImageError + '_ {
    move |err| ImageError::Io {
        path: path.to_path_buf(),
        err,
    }
}

fn has_image_extension(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// All image files under `dir`, grouped by folder and sorted like Python's
/// `sorted(os.walk(dir))` followed by `sorted(files)`.
fn walk(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut folders: Vec<(String, Vec<PathBuf>)> = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(&d).map_err(io_err(&d))? {
            let entry = entry.map_err(io_err(&d))?;
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else if has_image_extension(&p) {
                files.push(p);
            }
        }
        files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
        folders.push((d.to_string_lossy().into_owned(), files));
    }
    folders.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(folders.into_iter().flat_map(|(_, f)| f).collect())
}

impl ImageFolder {
    /// List a split folder. Errors name the folder: missing, no class folders, or classes
    /// without any image.
    pub fn open(root: impl AsRef<Path>) -> Result<Self> {
        let root = root.as_ref();
        if !root.is_dir() {
            return Err(ImageError::BadDataset {
                path: root.to_path_buf(),
                why: "not a directory (expected ImageNet layout ROOT/<split>/<class>/<image>)".into(),
            });
        }
        let mut classes = Vec::new();
        for entry in std::fs::read_dir(root).map_err(io_err(root))? {
            let entry = entry.map_err(io_err(root))?;
            if entry.path().is_dir() {
                classes.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        classes.sort();
        if classes.is_empty() {
            return Err(ImageError::BadDataset {
                path: root.to_path_buf(),
                why: "no class sub-folders".into(),
            });
        }
        let mut samples = Vec::new();
        let mut empty = Vec::new();
        for (i, c) in classes.iter().enumerate() {
            let files = walk(&root.join(c))?;
            if files.is_empty() {
                empty.push(c.clone());
            }
            samples.extend(files.into_iter().map(|f| (f, i)));
        }
        if !empty.is_empty() {
            return Err(ImageError::BadDataset {
                path: root.to_path_buf(),
                why: format!(
                    "no image files ({}) in class folder(s): {}",
                    IMAGE_EXTENSIONS.join(", "),
                    empty.join(", ")
                ),
            });
        }
        Ok(ImageFolder {
            root: root.to_path_buf(),
            classes,
            samples,
        })
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// True without samples.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// Keep `n` samples spread evenly over the sorted list (index `⌊i · len / n⌋`), so that a
    /// short run still sees every class. No-op when `n >= len`.
    pub fn subsample(&mut self, n: usize) {
        let len = self.samples.len();
        if n >= len {
            return;
        }
        self.samples = (0..n).map(|i| self.samples[i * len / n].clone()).collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorted_classes_and_files_with_errors() {
        let dir = std::env::temp_dir().join(format!("fp8q_folder_{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for (c, f) in [("b", "2.png"), ("b", "10.png"), ("a", "z.JPG"), ("a", "y.txt")] {
            std::fs::create_dir_all(dir.join(c)).unwrap();
            std::fs::write(dir.join(c).join(f), b"x").unwrap();
        }
        let ds = ImageFolder::open(&dir).unwrap();
        assert_eq!(ds.classes, vec!["a", "b"]);
        let names: Vec<_> = ds
            .samples
            .iter()
            .map(|(p, c)| (p.file_name().unwrap().to_string_lossy().into_owned(), *c))
            .collect();
        assert_eq!(
            names,
            vec![("z.JPG".into(), 0), ("10.png".into(), 1), ("2.png".into(), 1)]
        );

        std::fs::create_dir_all(dir.join("c")).unwrap();
        let err = ImageFolder::open(&dir).unwrap_err().to_string();
        assert!(err.contains("class folder(s): c"), "{err}");
        let err = ImageFolder::open(dir.join("nope")).unwrap_err().to_string();
        assert!(err.contains("nope") && err.contains("not a directory"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
