"""nbgrader, staff side (instructor and TA): Formgrader and Create Assignment on the
course folder shared by the staff group, releasing to the course exchange."""
import os

c = get_config()  # noqa: F821
c.CourseDirectory.course_id = os.environ["LEC4_COURSE_ID"]
c.CourseDirectory.root = os.environ["LEC4_COURSE_ROOT"]
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "assignments"
c.Exchange.root = os.environ["LEC4_EXCHANGE"]
