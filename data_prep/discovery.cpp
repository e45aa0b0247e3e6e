#include "discovery.hpp"

#include <algorithm>
#include <set>
#include <sstream>
#include <tuple>

namespace brainmri::prep {
namespace fs = std::filesystem;
namespace {

constexpr const char* kExpectedLayout =
    "expected <root>/<split>/<class>/<image> (Kaggle layout, e.g. root/Training/glioma/x.jpg) "
    "or <root>/<class>/<image>";

bool is_hidden(const fs::path& path) { return path.filename().string().starts_with('.'); }

std::vector<fs::path> sorted_children(const fs::path& dir, bool directories) {
  std::vector<fs::path> children;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (is_hidden(entry.path())) continue;
    if (directories ? entry.is_directory() : !entry.is_directory()) children.push_back(entry.path());
  }
  std::sort(children.begin(), children.end());
  return children;
}

bool has_subdirectories(const fs::path& dir) { return !sorted_children(dir, true).empty(); }

struct FoundClassFolder {
  int root_index;
  std::string split;
  std::string folder_name;
  fs::path path;
  std::string relative_prefix;
};

std::vector<FoundClassFolder> find_class_folders(const fs::path& root, int root_index) {
  if (!fs::exists(root)) throw LayoutError("dataset root " + root.string() + " does not exist");
  if (!fs::is_directory(root)) throw LayoutError("dataset root " + root.string() + " is not a directory");
  const auto top = sorted_children(root, true);
  if (top.empty()) {
    throw LayoutError("dataset root " + root.string() + " has no class folders; " + kExpectedLayout);
  }
  std::vector<FoundClassFolder> found;
  const bool kaggle = std::any_of(top.begin(), top.end(), has_subdirectories);
  if (kaggle) {
    for (const auto& split_dir : top) {
      const auto classes = sorted_children(split_dir, true);
      if (classes.empty()) {
        throw LayoutError("folder " + split_dir.string() + " has no class folders, but its siblings do; " +
                          kExpectedLayout);
      }
      for (const auto& class_dir : classes) {
        if (has_subdirectories(class_dir)) {
          throw LayoutError("class folder " + class_dir.string() + " contains folders; " + kExpectedLayout);
        }
        const std::string split = split_dir.filename().string();
        const std::string name = class_dir.filename().string();
        found.push_back({root_index, split, name, class_dir, split + "/" + name + "/"});
      }
    }
  } else {
    const fs::path absolute = fs::absolute(root).lexically_normal();
    std::string split = (absolute.has_filename() ? absolute : absolute.parent_path()).filename().string();
    for (const auto& class_dir : top) {
      const std::string name = class_dir.filename().string();
      found.push_back({root_index, split, name, class_dir, name + "/"});
    }
  }
  return found;
}

}  // namespace

std::map<std::string, std::string> parse_class_map(const std::string& text) {
  std::map<std::string, std::string> mapping;
  std::stringstream stream(text);
  std::string item;
  while (std::getline(stream, item, ',')) {
    if (item.empty()) continue;
    const auto equals = item.find('=');
    if (equals == std::string::npos || equals == 0 || equals + 1 == item.size()) {
      throw std::invalid_argument("class map entry '" + item + "' is not of the form folder=name");
    }
    const auto folder = item.substr(0, equals);
    if (!mapping.emplace(folder, item.substr(equals + 1)).second) {
      throw std::invalid_argument("class map names folder '" + folder + "' twice");
    }
  }
  return mapping;
}

Discovery discover_dataset(const DiscoveryOptions& options) {
  if (options.roots.empty()) throw LayoutError("no dataset root given");
  std::vector<FoundClassFolder> folders;
  for (std::size_t i = 0; i < options.roots.size(); ++i) {
    auto found = find_class_folders(options.roots[i], static_cast<int>(i));
    folders.insert(folders.end(), found.begin(), found.end());
  }

  std::set<std::string> available_splits;
  for (const auto& folder : folders) available_splits.insert(folder.split);
  if (!options.splits.empty()) {
    for (const auto& wanted : options.splits) {
      if (!available_splits.contains(wanted)) {
        std::string list;
        for (const auto& s : available_splits) list += (list.empty() ? "" : ", ") + s;
        throw LayoutError("split '" + wanted + "' was requested but the roots only have: " + list);
      }
    }
    std::erase_if(folders, [&](const FoundClassFolder& f) {
      return std::find(options.splits.begin(), options.splits.end(), f.split) == options.splits.end();
    });
  }

  std::set<std::string> folder_names;
  for (const auto& folder : folders) folder_names.insert(folder.folder_name);
  for (const auto& [folder, name] : options.class_map) {
    if (!folder_names.contains(folder)) {
      throw LayoutError("--class-map renames '" + folder + "' but no class folder has that name");
    }
  }
  auto class_name_of = [&](const std::string& folder) {
    const auto it = options.class_map.find(folder);
    return it == options.class_map.end() ? folder : it->second;
  };

  Discovery discovery;
  std::map<std::string, std::set<std::string>> splits_of_class;
  std::set<std::string> splits;
  for (const auto& folder : folders) {
    splits_of_class[class_name_of(folder.folder_name)].insert(folder.split);
    splits.insert(folder.split);
  }
  discovery.split_names.assign(splits.begin(), splits.end());
  for (const auto& [name, in_splits] : splits_of_class) {
    if (in_splits.size() != splits.size()) {
      std::string missing;
      for (const auto& s : splits) {
        if (!in_splits.contains(s)) missing += (missing.empty() ? "" : ", ") + s;
      }
      throw LayoutError("class '" + name + "' is missing from split(s) " + missing +
                        "; every split must have the same class folders (use --splits to pack fewer splits)");
    }
    discovery.class_names.push_back(name);
  }

  auto index_of = [](const std::vector<std::string>& names, const std::string& name) {
    return static_cast<int>(std::find(names.begin(), names.end(), name) - names.begin());
  };
  for (const auto& folder : folders) {
    const auto files = sorted_children(folder.path, false);
    if (files.empty()) {
      throw LayoutError("class folder " + folder.path.string() + " is empty; remove it or add its images");
    }
    for (const auto& file : files) {
      discovery.candidates.push_back({folder.root_index, index_of(discovery.split_names, folder.split),
                                      index_of(discovery.class_names, class_name_of(folder.folder_name)), file,
                                      folder.relative_prefix + file.filename().string()});
    }
  }
  std::sort(discovery.candidates.begin(), discovery.candidates.end(), [](const Candidate& a, const Candidate& b) {
    return std::tie(a.split_index, a.label, a.relative_path, a.root_index) <
           std::tie(b.split_index, b.label, b.relative_path, b.root_index);
  });
  return discovery;
}

}  // namespace brainmri::prep
