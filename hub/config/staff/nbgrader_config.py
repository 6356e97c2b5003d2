"""nbgrader, staff side (instructor and TA): Formgrader and Create Assignment on the
course folder shared by the staff group, releasing to the course exchange."""
import os

c = get_config()  # noqa: F821
c.CourseDirectory.course_id = os.environ["LEC4_COURSE_ID"]
# ~/lec4-course links to LEC4_COURSE_ROOT: Formgrader needs the course inside the server's root
c.CourseDirectory.root = os.path.join(os.path.expanduser("~"), "lec4-course")
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "assignments"
c.Exchange.root = os.environ["LEC4_EXCHANGE"]
# instructor and TA share the course: exchange folders group-writable (group lec4-staff), so the
# TA can collect what the instructor released and return feedback into the same course.
c.CourseDirectory.groupshared = True
