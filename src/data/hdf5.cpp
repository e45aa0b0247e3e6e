#include "brainmri/data/hdf5.hpp"

#include <cstring>
#include <mutex>

namespace brainmri::hdf5 {
namespace {

// Runs before the first HDF5 call of the process.
// - HDF5 prints its error stack to stderr by default; we turn that off and put the stack into
//   the exception message instead, so errors reach the user once, with our context.
// - HDF5 closes every open object at exit. After a failed write (a full disk) a file whose
//   close already failed stays half-open, and that exit handler then crashes; every file we
//   own is closed by RAII, so the handler is not needed.
void initialise_library() {
  static std::once_flag once;
  std::call_once(once, [] {
    H5dont_atexit();
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  });
}

herr_t append_error(unsigned depth, const H5E_error2_t* error, void* client) {
  auto* text = static_cast<std::string*>(client);
  if (depth > 3) return 0;  // The innermost frames are enough to explain the failure.
  if (!text->empty()) *text += "; ";
  *text += error->desc ? error->desc : "(no description)";
  if (error->func_name) *text += std::string(" in ") + error->func_name;
  return 0;
}

std::string current_error_stack() {
  std::string text;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, append_error, &text);
  H5Eclear2(H5E_DEFAULT);
  return text.empty() ? "unknown HDF5 error" : text;
}

template <typename T>
hid_t native_type();
template <>
hid_t native_type<std::int32_t>() {
  return H5T_NATIVE_INT32;
}
template <>
hid_t native_type<std::int64_t>() {
  return H5T_NATIVE_INT64;
}
template <>
hid_t native_type<std::uint8_t>() {
  return H5T_NATIVE_UINT8;
}
template <>
hid_t native_type<std::uint64_t>() {
  return H5T_NATIVE_UINT64;
}
template <>
hid_t native_type<double>() {
  return H5T_NATIVE_DOUBLE;
}

Handle utf8_variable_string_type() {
  Handle type(check(H5Tcopy(H5T_C_S1), "copy string type"), H5Tclose);
  check(H5Tset_size(type, H5T_VARIABLE), "make string type variable-length");
  check(H5Tset_cset(type, H5T_CSET_UTF8), "make string type UTF-8");
  return type;
}

Handle simple_space(hsize_t count) {
  return Handle(check(H5Screate_simple(1, &count, nullptr), "create dataspace"), H5Sclose);
}

Handle open_attribute(hid_t object, const std::string& name) {
  return Handle(check(H5Aopen(object, name.c_str(), H5P_DEFAULT), "open attribute '" + name + "'"), H5Aclose);
}

template <typename T>
void write_scalar_attribute(hid_t object, const std::string& name, T value) {
  Handle space(check(H5Screate(H5S_SCALAR), "create scalar dataspace"), H5Sclose);
  Handle attribute(check(H5Acreate2(object, name.c_str(), native_type<T>(), space, H5P_DEFAULT, H5P_DEFAULT),
                         "create attribute '" + name + "'"),
                   H5Aclose);
  check(H5Awrite(attribute, native_type<T>(), &value), "write attribute '" + name + "'");
}

template <typename T>
T read_scalar_attribute(hid_t object, const std::string& name) {
  Handle attribute = open_attribute(object, name);
  T value{};
  check(H5Aread(attribute, native_type<T>(), &value), "read attribute '" + name + "'");
  return value;
}

std::vector<const char*> c_strings(const std::vector<std::string>& values) {
  std::vector<const char*> pointers;
  pointers.reserve(values.size());
  for (const auto& value : values) pointers.push_back(value.c_str());
  return pointers;
}

// Reads variable-length strings through `reader` and frees HDF5's buffers afterwards.
template <typename Reader>
std::vector<std::string> read_variable_strings(hid_t space, hid_t type, std::size_t count, Reader reader) {
  std::vector<char*> raw(count, nullptr);
  reader(raw.data());
  std::vector<std::string> values;
  values.reserve(count);
  for (char* text : raw) values.emplace_back(text ? text : "");
  H5Dvlen_reclaim(type, space, H5P_DEFAULT, raw.data());
  return values;
}

}  // namespace

Handle& Handle::operator=(Handle&& other) noexcept {
  if (this != &other) {
    reset();
    id_ = other.id_;
    closer_ = other.closer_;
    other.id_ = H5I_INVALID_HID;
  }
  return *this;
}

void Handle::reset() noexcept {
  if (id_ >= 0 && closer_) closer_(id_);
  id_ = H5I_INVALID_HID;
}

void Handle::close() {
  if (id_ < 0) return;
  const hid_t id = id_;
  id_ = H5I_INVALID_HID;
  check(closer_(id), "close HDF5 object");
}

hid_t check(hid_t status, const std::string& what) {
  if (status < 0) throw Hdf5Error(what + ": " + current_error_stack());
  return status;
}

Handle create_file(const std::filesystem::path& path) {
  initialise_library();
  return Handle(
      check(H5Fcreate(path.c_str(), H5F_ACC_EXCL, H5P_DEFAULT, H5P_DEFAULT), "create HDF5 file " + path.string()),
      H5Fclose);
}

Handle open_file_readonly(const std::filesystem::path& path) {
  initialise_library();
  return Handle(check(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), "open HDF5 file " + path.string()), H5Fclose);
}

Handle open_dataset(hid_t file, const std::string& name) {
  return Handle(check(H5Dopen2(file, name.c_str(), H5P_DEFAULT), "open dataset '" + name + "'"), H5Dclose);
}

Handle open_group(hid_t file, const std::string& name) {
  return Handle(check(H5Gopen2(file, name.c_str(), H5P_DEFAULT), "open group '" + name + "'"), H5Gclose);
}

bool has_dataset(hid_t file, const std::string& name) {
  return check(H5Lexists(file, name.c_str(), H5P_DEFAULT), "look up '" + name + "'") > 0;
}

std::vector<hsize_t> dataset_shape(hid_t dataset) {
  Handle space(check(H5Dget_space(dataset), "get dataspace"), H5Sclose);
  const int rank = static_cast<int>(check(H5Sget_simple_extent_ndims(space), "get rank"));
  std::vector<hsize_t> dims(static_cast<std::size_t>(rank));
  check(H5Sget_simple_extent_dims(space, dims.data(), nullptr), "get dimensions");
  return dims;
}

void write_attribute(hid_t object, const std::string& name, const std::string& value) {
  Handle type = utf8_variable_string_type();
  Handle space(check(H5Screate(H5S_SCALAR), "create scalar dataspace"), H5Sclose);
  Handle attribute(
      check(H5Acreate2(object, name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT), "create attribute '" + name + "'"),
      H5Aclose);
  const char* text = value.c_str();
  check(H5Awrite(attribute, type, &text), "write attribute '" + name + "'");
}

void write_attribute(hid_t object, const std::string& name, std::int64_t value) {
  write_scalar_attribute(object, name, value);
}

void write_attribute(hid_t object, const std::string& name, double value) {
  write_scalar_attribute(object, name, value);
}

void write_attribute(hid_t object, const std::string& name, const std::vector<std::string>& values) {
  Handle type = utf8_variable_string_type();
  Handle space = simple_space(values.size());
  Handle attribute(
      check(H5Acreate2(object, name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT), "create attribute '" + name + "'"),
      H5Aclose);
  auto pointers = c_strings(values);
  check(H5Awrite(attribute, type, pointers.data()), "write attribute '" + name + "'");
}

bool has_attribute(hid_t object, const std::string& name) {
  return check(H5Aexists(object, name.c_str()), "look up attribute '" + name + "'") > 0;
}

std::string read_string_attribute(hid_t object, const std::string& name) {
  auto values = read_string_list_attribute(object, name);
  if (values.size() != 1) throw Hdf5Error("attribute '" + name + "' is not a single string");
  return values.front();
}

std::int64_t read_int_attribute(hid_t object, const std::string& name) {
  return read_scalar_attribute<std::int64_t>(object, name);
}

double read_double_attribute(hid_t object, const std::string& name) {
  return read_scalar_attribute<double>(object, name);
}

std::vector<std::string> read_string_list_attribute(hid_t object, const std::string& name) {
  Handle attribute = open_attribute(object, name);
  Handle space(check(H5Aget_space(attribute), "get attribute dataspace"), H5Sclose);
  const auto count = static_cast<std::size_t>(check(H5Sget_simple_extent_npoints(space), "count attribute"));
  Handle stored_type(check(H5Aget_type(attribute), "get attribute type"), H5Tclose);
  // An empty list may come with any element type (Keras writes an empty float array).
  if (count == 0) return {};
  if (H5Tget_class(stored_type) != H5T_STRING) throw Hdf5Error("attribute '" + name + "' is not a string");
  if (H5Tis_variable_str(stored_type) > 0) {
    // Read in the stored character set: HDF5 does not convert between ASCII and UTF-8.
    Handle type = utf8_variable_string_type();
    check(H5Tset_cset(type, H5Tget_cset(stored_type)), "set character set");
    return read_variable_strings(space, type, count, [&](char** buffer) {
      check(H5Aread(attribute, type, buffer), "read attribute '" + name + "'");
    });
  }
  const std::size_t width = H5Tget_size(stored_type);
  std::vector<char> packed(count * width);
  if (!packed.empty()) check(H5Aread(attribute, stored_type, packed.data()), "read attribute '" + name + "'");
  std::vector<std::string> values;
  for (std::size_t i = 0; i < count; ++i) {
    const char* start = packed.data() + i * width;
    values.emplace_back(start, strnlen(start, width));
  }
  return values;
}

namespace {

template <typename Array, typename T>
Array read_array(hid_t location, const std::string& path, hid_t memory_type) {
  Handle dataset = open_dataset(location, path);
  Handle type(check(H5Dget_type(dataset), "get dataset type"), H5Tclose);
  if (H5Tget_class(type) != H5T_FLOAT) throw Hdf5Error("dataset '" + path + "' is not floating point");
  Array array;
  array.shape = dataset_shape(dataset);
  std::size_t count = 1;
  for (const auto dim : array.shape) count *= dim;
  array.values.resize(count);
  if (count > 0) {
    check(H5Dread(dataset, memory_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, array.values.data()),
          "read dataset '" + path + "'");
  }
  return array;
}

template <typename T>
void write_array(hid_t location, const std::string& path, const std::vector<hsize_t>& shape,
                 const std::vector<T>& values, hid_t file_type, hid_t memory_type) {
  Handle space(check(H5Screate_simple(static_cast<int>(shape.size()), shape.data(), nullptr), "create dataspace"),
               H5Sclose);
  Handle links(check(H5Pcreate(H5P_LINK_CREATE), "create link properties"), H5Pclose);
  check(H5Pset_create_intermediate_group(links, 1), "allow intermediate groups");
  Handle dataset(check(H5Dcreate2(location, path.c_str(), file_type, space, links, H5P_DEFAULT, H5P_DEFAULT),
                       "create dataset '" + path + "'"),
                 H5Dclose);
  if (!values.empty()) {
    check(H5Dwrite(dataset, memory_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()), "write dataset '" + path + "'");
  }
}

}  // namespace

FloatArray read_float_array(hid_t location, const std::string& path) {
  return read_array<FloatArray, float>(location, path, H5T_NATIVE_FLOAT);
}

void write_float_array(hid_t location, const std::string& path, const std::vector<hsize_t>& shape,
                       const std::vector<float>& values) {
  write_array(location, path, shape, values, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT);
}

DoubleArray read_double_array(hid_t location, const std::string& path) {
  return read_array<DoubleArray, double>(location, path, H5T_NATIVE_DOUBLE);
}

void write_double_array(hid_t location, const std::string& path, const std::vector<hsize_t>& shape,
                        const std::vector<double>& values) {
  write_array(location, path, shape, values, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE);
}

template <typename T>
void write_vector(hid_t file, const std::string& name, const std::vector<T>& values) {
  Handle space = simple_space(values.size());
  Handle dataset(check(H5Dcreate2(file, name.c_str(), native_type<T>(), space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                       "create dataset '" + name + "'"),
                 H5Dclose);
  if (!values.empty()) {
    check(H5Dwrite(dataset, native_type<T>(), H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()),
          "write dataset '" + name + "'");
  }
}

template <typename T>
std::vector<T> read_vector(hid_t file, const std::string& name) {
  Handle dataset = open_dataset(file, name);
  const auto shape = dataset_shape(dataset);
  if (shape.size() != 1) throw Hdf5Error("dataset '" + name + "' is not one-dimensional");
  std::vector<T> values(shape[0]);
  if (!values.empty()) {
    check(H5Dread(dataset, native_type<T>(), H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()),
          "read dataset '" + name + "'");
  }
  return values;
}

template void write_vector(hid_t, const std::string&, const std::vector<std::int32_t>&);
template void write_vector(hid_t, const std::string&, const std::vector<std::int64_t>&);
template void write_vector(hid_t, const std::string&, const std::vector<std::uint8_t>&);
template void write_vector(hid_t, const std::string&, const std::vector<std::uint64_t>&);
template std::vector<std::int32_t> read_vector(hid_t, const std::string&);
template std::vector<std::int64_t> read_vector(hid_t, const std::string&);
template std::vector<std::uint8_t> read_vector(hid_t, const std::string&);
template std::vector<std::uint64_t> read_vector(hid_t, const std::string&);

void write_strings(hid_t file, const std::string& name, const std::vector<std::string>& values) {
  Handle type = utf8_variable_string_type();
  Handle space = simple_space(values.size());
  Handle dataset(check(H5Dcreate2(file, name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                       "create dataset '" + name + "'"),
                 H5Dclose);
  auto pointers = c_strings(values);
  if (!values.empty()) {
    check(H5Dwrite(dataset, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, pointers.data()), "write dataset '" + name + "'");
  }
}

std::vector<std::string> read_strings(hid_t file, const std::string& name) {
  Handle dataset = open_dataset(file, name);
  Handle space(check(H5Dget_space(dataset), "get dataspace"), H5Sclose);
  const auto count = static_cast<std::size_t>(check(H5Sget_simple_extent_npoints(space), "count strings"));
  Handle stored_type(check(H5Dget_type(dataset), "get dataset type"), H5Tclose);
  if (H5Tget_class(stored_type) != H5T_STRING || H5Tis_variable_str(stored_type) <= 0) {
    throw Hdf5Error("dataset '" + name + "' is not variable-length strings");
  }
  Handle type = utf8_variable_string_type();
  check(H5Tset_cset(type, H5Tget_cset(stored_type)), "set character set");
  if (count == 0) return {};
  return read_variable_strings(space, type, count, [&](char** buffer) {
    check(H5Dread(dataset, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buffer), "read dataset '" + name + "'");
  });
}

void write_fixed_strings(hid_t file, const std::string& name, const std::vector<std::string>& values,
                         std::size_t width) {
  Handle type(check(H5Tcopy(H5T_C_S1), "copy string type"), H5Tclose);
  check(H5Tset_size(type, width), "set string width");
  check(H5Tset_strpad(type, H5T_STR_NULLPAD), "set string padding");
  std::vector<char> packed(values.size() * width, '\0');
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (values[i].size() > width)
      throw Hdf5Error("string longer than " + std::to_string(width) + " for '" + name + "'");
    std::memcpy(packed.data() + i * width, values[i].data(), values[i].size());
  }
  Handle space = simple_space(values.size());
  Handle dataset(check(H5Dcreate2(file, name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                       "create dataset '" + name + "'"),
                 H5Dclose);
  if (!values.empty()) {
    check(H5Dwrite(dataset, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, packed.data()), "write dataset '" + name + "'");
  }
}

std::vector<std::string> read_fixed_strings(hid_t file, const std::string& name) {
  Handle dataset = open_dataset(file, name);
  Handle type(check(H5Dget_type(dataset), "get dataset type"), H5Tclose);
  if (H5Tget_class(type) != H5T_STRING || H5Tis_variable_str(type) > 0) {
    throw Hdf5Error("dataset '" + name + "' is not fixed-length strings");
  }
  const std::size_t width = H5Tget_size(type);
  const auto shape = dataset_shape(dataset);
  if (shape.size() != 1) throw Hdf5Error("dataset '" + name + "' is not one-dimensional");
  std::vector<char> packed(shape[0] * width);
  if (!packed.empty()) {
    check(H5Dread(dataset, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, packed.data()), "read dataset '" + name + "'");
  }
  std::vector<std::string> values;
  values.reserve(shape[0]);
  for (std::size_t i = 0; i < shape[0]; ++i) {
    const char* start = packed.data() + i * width;
    values.emplace_back(start, strnlen(start, width));
  }
  return values;
}

}  // namespace brainmri::hdf5
