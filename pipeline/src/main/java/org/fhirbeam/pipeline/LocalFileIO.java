package org.fhirbeam.pipeline;

import io.delta.kernel.defaults.engine.fileio.FileIO;
import io.delta.kernel.defaults.engine.fileio.InputFile;
import io.delta.kernel.defaults.engine.fileio.OutputFile;
import io.delta.kernel.defaults.engine.fileio.PositionOutputStream;
import io.delta.kernel.defaults.engine.fileio.SeekableInputStream;
import io.delta.kernel.utils.CloseableIterator;
import io.delta.kernel.utils.FileStatus;
import java.io.EOFException;
import java.io.FileNotFoundException;
import java.io.IOException;
import java.io.OutputStream;
import java.io.Writer;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.BasicFileAttributes;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.UUID;
import java.util.stream.Stream;

/**
 * The Delta kernel's file access for tables on a local or mounted file system, through {@code java.nio}: Hadoop's
 * local file system, the kernel's default, starts a {@code chmod} or {@code readlink} process for most files it writes
 * or renames (over 200 for one run's tables, most of the commit's time). A log entry is published by a hard link to a
 * whole temporary file, which fails if the entry exists: two writers of one version cannot both succeed.
 */
final class LocalFileIO implements FileIO {
  /**
   * A file's path as the kernel names it: {@code file:/...}, not percent-encoded, as Hadoop's local file system
   * names it (the kernel encodes it where a log entry needs a URI).
   */
  static String name(Path path) {
    return "file:" + path.toAbsolutePath().normalize();
  }

  /** The local path of a name the kernel gives: {@code file:/...} or {@code file:///...} (not encoded), or a path. */
  static Path path(String name) {
    String p = name.startsWith("file:") ? name.substring("file:".length()) : name;
    return Path.of(p.startsWith("///") ? p.substring(2) : p);
  }

  @Override
  public CloseableIterator<FileStatus> listFrom(String filePath) throws IOException {
    Path from = path(filePath);
    Path folder = from.getParent();
    if (!Files.isDirectory(folder)) {
      throw new FileNotFoundException("no folder " + folder);
    }
    String first = from.getFileName().toString();
    List<FileStatus> out = new ArrayList<>();
    try (Stream<Path> s = Files.list(folder)) {
      for (Path p : s.filter(p -> p.getFileName().toString().compareTo(first) >= 0).sorted().toList()) {
        try {
          BasicFileAttributes a = Files.readAttributes(p, BasicFileAttributes.class);
          if (a.isRegularFile()) {
            out.add(FileStatus.of(name(p), a.size(), a.lastModifiedTime().toMillis()));
          }
        } catch (NoSuchFileException e) {
          // deleted since it was listed (a log cleanup): not there
        }
      }
    }
    return io.delta.kernel.internal.util.Utils.toCloseableIterator(out.iterator());
  }

  @Override
  public FileStatus getFileStatus(String name) throws IOException {
    Path p = path(name);
    try {
      BasicFileAttributes a = Files.readAttributes(p, BasicFileAttributes.class);
      return FileStatus.of(name(p), a.size(), a.lastModifiedTime().toMillis());
    } catch (NoSuchFileException e) {
      throw new FileNotFoundException(name);
    }
  }

  @Override
  public String resolvePath(String name) {
    return name(path(name));
  }

  @Override
  public boolean mkdirs(String name) throws IOException {
    Files.createDirectories(path(name));
    return true;
  }

  @Override
  public InputFile newInputFile(String name, long fileSize) {
    Path p = path(name);
    return new InputFile() {
      @Override
      public long length() {
        return fileSize;
      }

      @Override
      public String path() {
        return name;
      }

      @Override
      public SeekableInputStream newStream() throws IOException {
        try {
          return new ChannelInput(FileChannel.open(p, StandardOpenOption.READ));
        } catch (NoSuchFileException e) {
          throw new FileNotFoundException(name); // what the kernel takes for a file that is not there
        }
      }
    };
  }

  @Override
  public OutputFile newOutputFile(String name) {
    Path p = path(name);
    return new OutputFile() {
      @Override
      public String path() {
        return name;
      }

      @Override
      public PositionOutputStream create(boolean putIfAbsent) throws IOException {
        Files.createDirectories(p.getParent());
        OutputStream out = putIfAbsent ? Files.newOutputStream(p, StandardOpenOption.CREATE_NEW,
            StandardOpenOption.WRITE) : Files.newOutputStream(p);
        return new CountingOutput(out);
      }

      @Override
      public void writeAtomically(CloseableIterator<String> lines, boolean overwrite) throws IOException {
        Files.createDirectories(p.getParent());
        Path temp = p.resolveSibling("." + p.getFileName() + "." + UUID.randomUUID() + ".tmp");
        try {
          try (lines; Writer w = Files.newBufferedWriter(temp, StandardCharsets.UTF_8)) {
            while (lines.hasNext()) {
              w.write(lines.next());
              w.write('\n');
            }
          }
          if (overwrite) {
            Files.move(temp, p, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
          } else {
            publishIfAbsent(temp, p);
          }
        } finally {
          Files.deleteIfExists(temp);
        }
      }
    };
  }

  /**
   * Makes whole file {@code temp} the file {@code target} unless that exists: by a hard link, which fails if it
   * does; on a file system without hard links (some network and FUSE mounts), by a rename after a check, which two
   * writers at the same instant could both pass (Hadoop's local log store gives no more).
   */
  private static void publishIfAbsent(Path temp, Path target) throws IOException {
    try {
      Files.createLink(target, temp);
    } catch (FileAlreadyExistsException e) {
      throw new FileAlreadyExistsException(target.toString());
    } catch (UnsupportedOperationException | java.nio.file.FileSystemException e) {
      Files.move(temp, target); // without REPLACE_EXISTING: throws FileAlreadyExistsException if the target exists
    }
  }

  @Override
  public boolean delete(String name) throws IOException {
    return Files.deleteIfExists(path(name));
  }

  @Override
  public Optional<String> getConf(String key) {
    return Optional.empty();
  }

  /** Reads a file through its channel, from any position. */
  private static final class ChannelInput extends SeekableInputStream {
    private final FileChannel channel;

    ChannelInput(FileChannel channel) {
      this.channel = channel;
    }

    @Override
    public int read() throws IOException {
      byte[] one = new byte[1];
      return read(one, 0, 1) < 0 ? -1 : one[0] & 0xff;
    }

    @Override
    public int read(byte[] b, int off, int len) throws IOException {
      return channel.read(ByteBuffer.wrap(b, off, len));
    }

    @Override
    public long getPos() throws IOException {
      return channel.position();
    }

    @Override
    public void seek(long pos) throws IOException {
      channel.position(pos);
    }

    @Override
    public void readFully(byte[] b, int off, int len) throws IOException {
      ByteBuffer buffer = ByteBuffer.wrap(b, off, len);
      while (buffer.hasRemaining()) {
        if (channel.read(buffer) < 0) {
          throw new EOFException("the file ended before " + len + " bytes were read");
        }
      }
    }

    @Override
    public void close() throws IOException {
      channel.close();
    }
  }

  /** Writes through, counting the bytes written. */
  private static final class CountingOutput extends PositionOutputStream {
    private final OutputStream out;
    private long pos;

    CountingOutput(OutputStream out) {
      this.out = new java.io.BufferedOutputStream(out, 1 << 16);
    }

    @Override
    public void write(int b) throws IOException {
      out.write(b);
      pos++;
    }

    @Override
    public void write(byte[] b, int off, int len) throws IOException {
      out.write(b, off, len);
      pos += len;
    }

    @Override
    public long getPos() {
      return pos;
    }

    @Override
    public void flush() throws IOException {
      out.flush();
    }

    @Override
    public void close() throws IOException {
      out.close();
    }
  }
}
